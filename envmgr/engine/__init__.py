"""The container engine (Docker, or Podman's compatible API; local or remote): `connection.py` (Engine: connecting,
images, listing and removing by label), `address.py` (where it is, how its ports are reached), `records.py` (an
environment as the engine shows it), `labels.py` (the labels on everything envmgr makes, the owner they name),
`containers.py` (running one container), `reaper.py` (the watchdog and the sweep of what dead owners left). This
package face imports nothing: what needs only the labels does not load the Docker SDK."""
