"""Fakes of outside services, served for real on loopback, for tests."""

from tests.fakes.fake_postman import FakePostman, RecordedRequest, fake_postman

__all__ = ["FakePostman", "RecordedRequest", "fake_postman"]
