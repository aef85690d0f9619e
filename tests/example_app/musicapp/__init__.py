"""musicapp: a small music-release service, envmgr's worked example (models, migrations, seeds, repository)."""
