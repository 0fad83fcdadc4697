"""Flask commands: `flask --app webapp seed-demo`, ..."""

import click
import sqlalchemy as sa
from flask import Flask, current_app, url_for

from webapp.extensions import db


def register(app: Flask) -> None:
    @app.cli.command("seed-demo")
    @click.option("--if-empty", is_flag=True, help="Only seed when the database has no company.")
    def seed_demo_command(if_empty: bool) -> None:
        """Create the company "Demo Construction" with users, projects, codes and time cards."""
        from webapp.models import Company
        from webapp.services.demo import seed_demo

        if if_empty and db.session.scalar(sa.select(sa.func.count(Company.id))):
            click.echo("Database already has data; demo not seeded.")
            return
        password = current_app.config["DEMO_ADMIN_PASSWORD"]
        company = seed_demo(password)
        click.echo(f'Seeded "{company.name}". Log in as admin@example.com / {password}')

    @app.cli.command("worker")
    @click.argument("queues", nargs=-1)
    def worker_command(queues) -> None:
        """Run an RQ worker (same as `python worker.py`)."""
        from worker import run_worker

        run_worker(list(queues) or None)

    @app.cli.command("invite-link")
    @click.argument("identifier")
    def invite_link_command(identifier: str) -> None:
        """Print an invite link with which the user (email or username) sets a password."""
        from webapp.models import User
        from webapp.public_url import public_base_url
        from webapp.services import invites

        needle = identifier.strip().lower()
        user = db.session.scalar(
            sa.select(User).where(sa.or_(User.email == needle, User.username == needle))
        )
        if user is None:
            raise click.ClickException(f"No user has the email or username {identifier!r}.")
        try:
            token = invites.make_invite_token(user)
        except invites.InviteRefused as refused:
            raise click.ClickException(str(refused)) from refused
        base = public_base_url()
        if base is None:
            raise click.ClickException("Set PUBLIC_BASE_URL so the link names this server.")
        with current_app.test_request_context(base_url=base):
            link = url_for("auth.invite", token=token, _external=True)
        days = invites.INVITE_MAX_AGE.days
        click.echo(f"Invite link for {user.name} (valid {days} days, until a password is set):")
        click.echo(link)
