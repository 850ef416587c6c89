"""chatapp's Textual UI (the only package that imports textual).

Entry points: ``chatapp.ui.app.run_app(settings=None, *, conversation_id=None)`` opens the chat
in this terminal (``chatapp`` / ``make run``; ``chatapp serve`` runs the same command for the
browser). Tests build ``ChatApp(settings, store, backend_factory)`` with
``backend_factory=lambda: FakeBackend(...)``.

Layout: ``app.py`` (startup, settings, theme, quitting), ``model_loading.py`` (the model slot,
loaded off the UI thread), ``chat_context.py`` (what screens get instead of the App: settings,
store, model, documents, sessions; and the turn choices), ``screens/chat.py`` (the main screen
and conversation actions), ``screens/replies.py`` (send / regenerate / edit / stop and batched
streaming through a ChatSession), ``generation.py`` (the reply worker), ``clipboard_export.py``,
``widgets/`` (header, sidebar, chat view, message, prompt, status line), ``screens/`` (settings,
help, dialogs), ``chatapp.tcss`` (all styles).

Pickers and other additions (templates, collections, models)
-------------------------------------------------------------
A module such as ``chatapp/ui/screens/templates.py`` defines::

    def register(ui: UIExtensions) -> None:
        ui.add_screen("templates", lambda app: TemplatePicker(app))
        ui.add_command("Pick template", "Choose the prompt template",
                       "app.open_screen('templates')", key="ctrl+g")
        ui.set_sources_renderer(sources_panel)      # (stored Message) -> Widget | None

and ``chatapp.ui.app.register_pickers`` imports it and calls ``register`` in the startup worker,
after the first frame (keep heavy imports inside functions). A new picker is one more line there.
SIGTERM and SIGHUP end the app within about a second in any state (``exit_on_signal.py``).

- Commands: ``add_command(title, help, action, key=None)``. ``action`` is an action string run
  on the chat screen (``"new_chat"``), an ``"app.…"`` action, or a callable given the app. They
  appear in the command palette (Ctrl+P) and on the help screen; ``key`` also binds a key.
- Screens: ``add_screen(name, factory)``; open one with ``app.action_open_screen(name)`` (or the
  action string ``"app.open_screen('name')"``).
- Turns: to send one with a template or a collection, build a ``chatapp.session.TurnRequest``
  and call ``app.send_request(request)``; the session prepares it (there is no other place that
  turns a user turn into model input).
- Header: ``app.chat_screen.header.set_field("template" | "collection" | any, value)``.
- Sources: the renderer builds the widget shown under a reply that has ``sources``; without one a
  plain numbered list is shown.
- State: ``app.context`` (ChatContext: settings, store, model slot, retriever, sessions),
  ``app.chat_screen.conversation_id`` and ``.choices`` (collection, documents on/off),
  ``app.apply_settings(settings, reload_model=True)`` (e.g. after picking another model).
"""
