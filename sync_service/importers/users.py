"""Reps named in import files (the ``Owner`` column): found by email, created when new."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_store.models import User


class Reps:
    """Get-or-create ``User`` rows by (lower-case) email, cached for the length of one import."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._cache: dict[str, User] = {}

    def get(self, email: str | None) -> User | None:
        """The rep with this address (created with an empty name when new); None for no address."""
        if not email:
            return None
        user = self._cache.get(email)
        if user is None:
            user = self._session.scalars(
                select(User).where(func.lower(User.email) == email).order_by(User.id).limit(1)
            ).first()
            if user is None:
                user = User(email=email, name="")
                self._session.add(user)
            self._cache[email] = user
        return user
