"""Flask commands: `flask --app webapp seed-demo`, ..."""

import click
import sqlalchemy as sa
from flask import Flask, current_app

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
