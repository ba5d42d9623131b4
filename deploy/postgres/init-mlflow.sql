-- MLflow keeps its own schema (and its own alembic_version table) in a separate database.
CREATE DATABASE mlflow OWNER keelwatch;
