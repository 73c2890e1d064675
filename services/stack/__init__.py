"""The local Kafka + Redis stack and the process supervisor that `up` and the tests share."""

from services.stack.local import LocalStack, running_stack, start_stack
from services.stack.procs import ManagedProcess, spawn

__all__ = ["LocalStack", "ManagedProcess", "running_stack", "spawn", "start_stack"]
