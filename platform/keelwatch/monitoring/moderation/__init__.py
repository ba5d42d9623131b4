"""Content moderation of model text: one taxonomy, filters that find spans (keyword/regex rules
with normalization against obfuscation, PII detectors with typed redaction), pure: text in,
findings out. The pipeline, policy, review queue and monitoring build on these (issue #11).
"""
