"""The account store: key records and linked accounts, one interface, two backends."""

from shared.adapters.accountstore.base import (
    AccountStore,
    KeyChanges,
    KeyTaken,
    PairTaken,
    VersionConflict,
    VersionMismatch,
)

__all__ = [
    "AccountStore",
    "KeyChanges",
    "KeyTaken",
    "PairTaken",
    "VersionConflict",
    "VersionMismatch",
]
