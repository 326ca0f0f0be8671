"""TOTP seeds sealed at rest: wider columns, and every plain seed sealed with the secret key

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 00:05:00.000000

Seeds stored before this migration are plain base32 text. They are sealed here with the
deployment's secret key (the same settings every process reads), bound to their user's id, so
a copy of the users table no longer hands out anyone's second factor. The downgrade does not
unseal them: downgrading code that cannot read sealed seeds would lock everybody with 2FA out
silently, so it refuses while sealed seeds exist.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("totp_secret", "totp_pending_secret")


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.alter_column(
                column, existing_type=sa.String(length=64), type_=sa.String(length=255)
            )
    bind = op.get_bind()
    users = sa.table("users", sa.column("id"), *(sa.column(c) for c in COLUMNS))
    rows = bind.execute(
        sa.select(users).where(sa.or_(*(users.c[c].is_not(None) for c in COLUMNS)))
    ).all()
    plain = [row for row in rows if any(v and not v.startswith("v1.") for v in row[1:])]
    if not plain:
        return
    from opsdeck.accounts.service.two_factor import totp_box
    from opsdeck.settings import get_settings

    box = totp_box(get_settings().prepare())
    for row in plain:
        values = {
            column: box.seal(value, bound_to=row.id)
            for column, value in zip(COLUMNS, row[1:], strict=True)
            if value and not value.startswith("v1.")
        }
        bind.execute(sa.update(users).where(users.c.id == row.id).values(**values))


def downgrade() -> None:
    bind = op.get_bind()
    users = sa.table("users", *(sa.column(c) for c in COLUMNS))
    sealed = bind.execute(
        sa.select(sa.func.count())
        .select_from(users)
        .where(sa.or_(*(users.c[c].like("v1.%") for c in COLUMNS)))
    ).scalar_one()
    if sealed:
        raise RuntimeError(
            f"{sealed} users have sealed TOTP seeds, which the code before 0008 cannot read; "
            "turn their 2FA off first, or stay on this revision."
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.alter_column(
                column, existing_type=sa.String(length=255), type_=sa.String(length=64)
            )
