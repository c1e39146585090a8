"""Tests of aliyun_sms_connector.verify: the service, its stores, and their faults."""
