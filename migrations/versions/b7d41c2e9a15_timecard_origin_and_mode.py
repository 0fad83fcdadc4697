"""timecard origin and mode: integer origin-id namespace, Procore's time-entry setting, and
Procore's copy of each pushed entry as it answered our write (its rounding)

Revision ID: b7d41c2e9a15
Revises: 9e2480cf7361
Create Date: 2026-12-09 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7d41c2e9a15'
down_revision = '9e2480cf7361'
branch_labels = None
depends_on = None


def upgrade():
    # Existing companies get their origin namespace the first time an entry is queued.
    with op.batch_alter_table('integration_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timecard_origin_namespace', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('procore_timecard_in_out', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('procore_time_entry_read_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('procore_time_entry_problem', sa.Text(), nullable=True))

    with op.batch_alter_table('procore_push', schema=None) as batch_op:
        batch_op.add_column(sa.Column('procore_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('procore_hours', sa.Numeric(precision=6, scale=2), nullable=True))


def downgrade():
    with op.batch_alter_table('procore_push', schema=None) as batch_op:
        batch_op.drop_column('procore_hours')
        batch_op.drop_column('procore_hash')

    with op.batch_alter_table('integration_settings', schema=None) as batch_op:
        batch_op.drop_column('procore_time_entry_problem')
        batch_op.drop_column('procore_time_entry_read_at')
        batch_op.drop_column('procore_timecard_in_out')
        batch_op.drop_column('timecard_origin_namespace')
