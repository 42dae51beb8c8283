"""The factory: many lines under one coordinator, with orders, stores, suppliers and genealogy."""

from factory.schema import FactorySpec, load_factory

__all__ = ["FactorySpec", "load_factory"]
