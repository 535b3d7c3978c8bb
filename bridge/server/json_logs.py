"""`--log-format json`: one JSON object per log line, for log shippers (Loki, Elasticsearch).

Each line carries the time, level, logger and message, plus the entity, turn id and module
the work was for (``bridge.providers.log_context``, set by the character stage) when known.
Only the log message itself is written, never the request's payload: player text reaches a
log only if a message quotes it, and none of the bridge's do.
"""

from __future__ import annotations

import json
import logging
import time

from bridge.providers.log_context import current_entity, current_module, current_turn


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (("entity", current_entity), ("turn", current_turn), ("module", current_module)):
            value = var.get()
            if value:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)
