"""Who may do what: principals, API tokens, roles, and the checks the API runs.

- ``roles``: the role hierarchy (pure);
- ``tokens``: the ``kw_<prefix>_<secret>`` format, HMAC storage, create / revoke / verify
  (take the caller's session, audited);
- ``authenticator``: an ``Authorization`` header → a :class:`~keelwatch.entities.auth.Principal`;
- ``oidc``: optional JWT access tokens from an identity provider;
- ``secrets_file`` and ``local``: the server secret and the local admin token in the data dir.

The route → role table and the FastAPI dependency live in :mod:`keelwatch.api.access`; the
CLI's ``keelwatch tokens`` commands in :mod:`keelwatch.cli.tokens`.
"""
