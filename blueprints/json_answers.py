"""Flask's JSON answers (`jsonify`, a view returning a dict) encoded by orjson (gateway.fastjson says why).

What they contain is what Flask's own provider writes: dates as HTTP dates, decimals, UUIDs and
dataclasses through its `default`, keys in the order given, integer keys as strings; only the
text is compact UTF-8 instead of ASCII escapes. A pretty-printed answer (debug mode) is Flask's.
"""
import orjson
from flask.json.provider import DefaultJSONProvider

_FLASK_TYPES = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


class JSONAnswers(DefaultJSONProvider):
    def response(self, *args, **kwargs):
        if (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(*args, **kwargs)
        value = self._prepare_response_obj(args, kwargs)
        options = _FLASK_TYPES | (orjson.OPT_SORT_KEYS if self.sort_keys else 0) | orjson.OPT_APPEND_NEWLINE
        try:
            body = orjson.dumps(value, default=self.default, option=options)
        except TypeError:       # what orjson refuses: an integer past 64 bits, a lone surrogate
            return super().response(*args, **kwargs)
        return self._app.response_class(body, mimetype=self.mimetype)
