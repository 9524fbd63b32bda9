namespace Peft.Onnx.Tests.Fuzz;

/// <summary>One case that ended badly: its index and seed replay it (PEFT_FUZZ_SEED + PEFT_FUZZ_CASE).</summary>
public sealed record FuzzFailure(int Case, int Seed, string Kind, string Detail);
