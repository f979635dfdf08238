"""Segment's HTTP Tracking API, so existing Segment/RudderStack SDKs send to Tessera unchanged."""
