namespace Peft.Onnx.Core.Configs;

/// <summary>The most positions a model was trained for, and the config.json key that says so.</summary>
public sealed record ContextWindow(int Positions, string Key);
