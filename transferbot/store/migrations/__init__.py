"""Alembic migrations, shipped inside the package (``transferbot db upgrade``)."""
