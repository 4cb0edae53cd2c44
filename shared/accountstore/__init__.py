"""The account store: key records and linked accounts, one interface, two backends."""

from shared.accountstore.base import AccountStore, KeyTaken, PairTaken, VersionConflict

__all__ = ["AccountStore", "KeyTaken", "PairTaken", "VersionConflict"]
