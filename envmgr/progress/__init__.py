"""Live progress of an environment's start: typed events from where the work happens (`events.py`), what the
terminal says about them (`board.py`), and the spans a report's waterfall draws (`spans.py`)."""
