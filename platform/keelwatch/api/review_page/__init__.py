"""The review page's pieces (HTML for people, served by ``api/routers/review_page.py``).

- ``session``: the session cookie, CSRF tokens and the signed one-shot flash message;
- ``highlight``: a review item's text as HTML with its findings marked (overlaps handled);
- ``templates`` and ``assets``: the pages, their inline stylesheet and keyboard script.

Everything here is pure (strings and entities in, strings out); the router reads the queue
through :mod:`keelwatch.monitoring.service.review_queue` and owns the HTTP side.
"""
