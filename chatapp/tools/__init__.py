"""Tools the model may call: one registry of built-ins and MCP servers, and the gate that lets
a call run only by a rule or the user's yes.

A tool is named ``SERVER.TOOL`` (built-ins ``documents.search``, ``clock.now``,
``math.calculate``). The session offers the registry's specs to the model, asks the gate about
each call, runs the allowed ones here and hands the results back to the model as data. Only this
package imports the MCP SDK (lazily)."""
