"""Every table, imported so `Base.metadata` is complete (Alembic, tests): the registry's
modules' models and the kernel's own."""

from opsdeck.core.db import Base
from opsdeck.modules import import_models

import_models()
metadata = Base.metadata

__all__ = ["metadata"]
