"""sync safety: held deactivations, login change notices, keep Crewclock's email

Revision ID: 5c1d2e3f4a6b
Revises: 5b0c2e7d41a9
Create Date: 2026-12-08 05:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5c1d2e3f4a6b'
down_revision = '5b0c2e7d41a9'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('login_change_notice',
    sa.Column('company_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('old_email', sa.String(length=254), nullable=True),
    sa.Column('new_email', sa.String(length=254), nullable=True),
    sa.Column('kept', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dismissed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['company.id'], name=op.f('fk_login_change_notice_company_id_company'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_login_change_notice_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_change_notice'))
    )
    with op.batch_alter_table('login_change_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_change_notice_company_id'), ['company_id'], unique=False)
        batch_op.create_index('ix_login_change_notice_user_open', ['user_id', 'dismissed_at'], unique=False)

    with op.batch_alter_table('integration_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('keep_crewclock_email', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_deletions', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.drop_column('held_deletions')

    with op.batch_alter_table('integration_settings', schema=None) as batch_op:
        batch_op.drop_column('keep_crewclock_email')

    with op.batch_alter_table('login_change_notice', schema=None) as batch_op:
        batch_op.drop_index('ix_login_change_notice_user_open')
        batch_op.drop_index(batch_op.f('ix_login_change_notice_company_id'))

    op.drop_table('login_change_notice')
