"""Frost's application layer: the ``frost`` command line, the local stack (``frost up``,
``frost down``) and the demo. It sits above the jobs (``frost.pipelines``) and the server
(``frost.serving``), which sit above the core library; nothing below imports it."""
