"""Every module's tables, imported so `Base.metadata` is complete (Alembic, tests)."""

from opsdeck.accounts import models as accounts_models
from opsdeck.audit import models as audit_models
from opsdeck.core.db import Base
from opsdeck.images import models as images_models

metadata = Base.metadata

__all__ = ["accounts_models", "audit_models", "images_models", "metadata"]
