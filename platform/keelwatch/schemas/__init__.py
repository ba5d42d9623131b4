"""Pydantic I/O shapes shared by the HTTP API and the CLI's ``--json`` output.

One module per capability (``registry.py`` ...). Output models are built from entities with
``model_validate(entity, from_attributes=True)``, so a new entity field is one edit here. What does
not belong here: ORM rows, entities (``keelwatch.entities``) and validation rules of the domain.
"""
