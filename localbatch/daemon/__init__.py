"""The daemon: the control loop (``loop``), what it does at start (``startup``), its process
lifecycle (``process``) and the API extensions only it can answer (``extensions``)."""
