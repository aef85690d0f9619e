"""The template database: migrated and seeded once per content, cloned for every database tests use.

build.py            ensure_template: build it once per content hash and server (under an advisory lock)
content_hash.py     what names it: the hash of what the migrations and the Postgres seeds read
migrate.py          the setting `migrate` read as one strategy:
  strategies.py       Alembic (in-process, or a clean process), a shell command, a `module:function`
  django_strategy.py  Django's migrate and loaddata, in a subprocess
  alembic_upgrade.py  Alembic's upgrade in this process: its configuration, its errors
  alembic_process.py  the same upgrade in a clean process, when the project's modules are imported here already
changes.py          the check that the migrations changed the template, and no other database of the server
  subprocesses.py     migrate commands: their environment, process group and output
files.py            the project's files a hash reads
seeds.py            the Postgres seed loader (`seeds/postgres/*.sql|py|json|yaml`)
sql.py              the SQL splitter of the seed files
"""
