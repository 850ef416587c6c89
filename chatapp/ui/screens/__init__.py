"""Screens: the chat screen, settings, help and small dialogs. Extension screens (templates,
collections, models) live here too and register themselves (see ``chatapp.ui``)."""
