"""golden's verification suite: pytest-testinfra checks of an image against expectations.json.

Run it through ``python -m golden.verify`` (see golden/verify.py), which sets the
options below and reads the report; directly it is
``pytest verify -c verify/pytest.ini --hosts=local:// --golden-expectations=E
--golden-phase=bake --golden-report=R``.
"""
