"""AWS: boto3 clients, Packer's manifest into images.lock, `invoke publish`, boot tests."""
