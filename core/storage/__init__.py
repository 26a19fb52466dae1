"""SQLAlchemy Core storage: tables, engine, migrations and the unit of work."""
