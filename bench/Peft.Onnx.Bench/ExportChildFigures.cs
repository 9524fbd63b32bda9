using System.Text.Json;

namespace Peft.Onnx.Bench;

/// <summary>One export child's figures (<see cref="ExportBench.RunChild"/>).</summary>
public sealed record ExportChildFigures(double Seconds, double WallSeconds, double CpuSeconds, long PeakRssBytes, JsonElement Phases);
