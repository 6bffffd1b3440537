"""The engine process: one backend served to every front end of the machine over a Unix domain socket."""
