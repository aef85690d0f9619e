"""LocalStack: the service (`service.py`) and resetting its per-worker AWS accounts (`accounts.py`). What it shares
with moto (variables, clients, seeds, the fixtures) is in `envmgr.services.aws`."""
