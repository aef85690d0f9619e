"""The services envmgr runs, one folder each (`<name>/`: settings, service, image, fixtures); the registry is
`registry.py`, the hooks every service provides `base.py`. This package face imports nothing."""
