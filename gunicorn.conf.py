"""gunicorn settings, read from the working directory by ``gunicorn -w N wsgi:app``.

Threaded workers with keep-alive: a sync worker closes the connection after every response
and sits idle while a request waits on PostgreSQL or Redis. A gthread worker keeps client
connections open and runs another request while one waits; the GIL still gives one core of
Python per worker, so scale with ``-w`` (one per core). See docs/architecture.md,
Performance.
"""

worker_class = "gthread"
threads = 4
keepalive = 5  # seconds an idle kept-alive connection stays open
