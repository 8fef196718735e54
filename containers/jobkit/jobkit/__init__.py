"""The job contract (docs/job-contract.md) as every Trainyard container sees it: SageMaker's
paths, JSON-encoded hyperparameters, progress events, the failure file, and the AWS Batch
hooks. The trainer and pose containers share it; it imports nothing heavy."""
