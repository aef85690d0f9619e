"""What a run's environment cost, for people: the HTML page (`html.py`, its charts `charts.py`), the project's
trend kept in pytest's cache folder (`trend.py`), and the text of `envmgr report show` and `compare` (`text.py`).
Pure: reports in, text out (the JSON report itself is made by envmgr.pytest.report)."""
