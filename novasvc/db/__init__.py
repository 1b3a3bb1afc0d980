"""
The services table: its schema (SQLAlchemy Core), the service store that
reads and writes it in a bounded thread pool, its in-memory twin, the rules
of a service record and the schema's migrations (Alembic).

Layer: beside L{novasvc.rpc} and L{novasvc.periodic}, which it never imports;
above the base modules. The core's service record and servicegroup use it.
"""
