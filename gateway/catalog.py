"""Model resolution and fallback order (SPEC section 4)."""
from gateway.errors import GatewayError, ModelNotFound


class Catalog:
    """The configured models, looked up by catalog id or by `provider/model`."""

    def __init__(self, settings):
        self.settings = settings
        self.models = settings.models
        self.groups = settings.groups

    def resolve(self, model_id):
        """Return (model, pinned): pinned when the id named a provider explicitly.

        :raise ModelNotFound: no such model, or its provider is switched off.
        """
        model = self.models.get(model_id)
        pinned = False
        if model is None and "/" in model_id:
            provider, _, name = model_id.partition("/")
            model = next((m for m in self.models.values() if m.provider == provider and name in (m.id, m.upstream_name)), None)
            pinned = True
        if model is None or not self.settings.providers[model.provider].enabled:
            raise ModelNotFound(model_id)
        return model, pinned

    def candidates(self, model_id, kind="chat", explicit=None):
        """Models to try, in order: the requested one, its group, then the other groups.

        An explicit `models` list replaces the group order; a pinned `provider/model` id is
        tried alone (the caller chose that provider on purpose).
        """
        first, pinned = self.resolve(model_id)
        if first.kind != kind:
            raise GatewayError(404, f"The model '{model_id}' is a {first.kind} model; this endpoint needs a {kind} model.",
                               code="model_not_found", param="model")
        if explicit is not None:
            ordered = [first] + [self.resolve(m)[0] for m in explicit]
        elif pinned or first.group is None:
            ordered = [first]
        else:
            ordered = [first] + [self.models[m] for m in self.groups[first.group]]
            if self.settings.routing.cross_group_fallback:
                for name, members in self.groups.items():
                    if name != first.group:
                        ordered += [self.models[m] for m in members]
        unique = []
        for model in ordered:
            if model not in unique and model.kind == kind and self.settings.providers[model.provider].enabled:
                unique.append(model)
        return unique

    def visible(self, allowed=None):
        """Models a caller may see: all enabled ones, or those in the key's allow-list."""
        return [m for m in self.models.values()
                if self.settings.providers[m.provider].enabled and (not allowed or m.id in allowed)]
