namespace Peft.Onnx.Server;

/// <summary>
/// What a request's "model" names: a served export, under its own name (the base) or under the name of one of its
/// adapters (a multi-adapter export), which the request's row then runs with.
/// </summary>
/// <param name="Name">The name as requested (and echoed in the answer).</param>
/// <param name="Adapter">The adapter of <paramref name="Served"/> (null: the base).</param>
public sealed record ModelChoice(ServedModel Served, string Name, string? Adapter);
