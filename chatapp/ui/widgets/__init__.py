"""Widgets of the chat screen: header, sidebar, chat view, message, prompt, status line."""
