"""The `envmgr` command (`app.py`: the apps, options and error handling; a module per command group)::

up.py            envmgr up [SERVICE...] [--detach --json]   start an environment (foreground until Ctrl-C)
environments.py  envmgr down ID | --all | --sandbox ID      remove environments
                 envmgr status [--json]                     environments on this engine, each service's health
                 envmgr reset [SERVICE...] --env ID         back to the seeded state
                 envmgr gc [--older-than DURATION]          remove what dead owners left behind
doctor.py        envmgr doctor                              engine, images and advice
images.py        envmgr images build|list                   the local image set
compose.py       envmgr compose export                      a docker compose file of the environment
daemon.py        envmgr daemon start|run|stop|status        the daemon that keeps warm environments
report.py        envmgr report show|compare                 the run reports pytest writes, what got slower
progress.py      (envmgr up's live progress while it starts)
cache.py         envmgr cache save|restore DIR              the template database and a cache folder
"""

from envmgr.cli import cache, compose, daemon, doctor, environments, images, report, up
from envmgr.cli.app import app, compose_app, daemon_app, images_app, main, report_app

__all__ = ["app", "main"]

# the commands, in the order `envmgr --help` lists them
app.command()(up.up)
app.command()(environments.down)
app.command()(environments.status)
app.command()(environments.reset)
app.command()(environments.gc)
app.command()(doctor.doctor)
images_app.command("build")(images.images_build)
images_app.command("list")(images.images_list)
compose_app.command("export")(compose.compose_export)
daemon_app.command("start")(daemon.daemon_start)
daemon_app.command("run")(daemon.daemon_run)
daemon_app.command("stop")(daemon.daemon_stop)
daemon_app.command("status")(daemon.daemon_status)
report_app.command("show")(report.report_show)
report_app.command("compare")(report.report_compare)
app.add_typer(cache.cache_app, name="cache")
cache.cache_app.command("save")(cache.cache_save)
cache.cache_app.command("restore")(cache.cache_restore)
