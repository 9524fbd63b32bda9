using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;

namespace Peft.Onnx.Runtime.Adapters;

/// <summary>
/// Reads a PEFT adapter folder for <see cref="OnnxModel.AddAdapter"/> with Core's readers: the config and the file are
/// checked against the base (<see cref="AdapterFit"/>, the exporter's and trainer's check), then every target must have
/// a stack in the export, and the rows are computed as the exporter computes them.
/// </summary>
internal static class PeftAdapterReader
{
    /// <param name="stacks">The export's stacked tensors by name, their dims as a slot axis then one slot's row shape.</param>
    /// <param name="baseWeight">A module's float32 base weight [in, out] as the export holds it, null where it holds none (DoRA needs it).</param>
    public static AdapterRows Read(string name, string dir, Architecture arch, IReadOnlyDictionary<string, long[]> stacks, Func<string, float[]?> baseWeight)
    {
        if (!Directory.Exists(dir)) throw new PeftOnnxException($"AddAdapter {name}: adapter folder '{dir}' not found");
        var config = AdapterConfig.Load(dir);
        var weightsPath = AdapterFormat.WeightsPath(dir);
        using var file = SafeTensorsFile.Open(weightsPath);
        switch (config)
        {
            case PromptLearningConfig:
                throw new PeftOnnxException($"AddAdapter {name}: {dir} is a {config.PeftType} adapter, which cannot be added at run time: its virtual tokens must run through the base model, and this export has no embeddings input (export it with --adapter {name}={dir})");
            case LoraConfig or Ia3Config:
                break;
            default:
                throw new PeftOnnxException($"AddAdapter {name}: {dir} is a {config.PeftType} adapter; adapters added at run time are LoRA or IA3 (export {config.PeftType} with --adapter, merged)");
        }
        var prepared = (InjectedAdapterConfig)AdapterFit.Check(config, arch, file, weightsPath);
        if (prepared.FindModulesToSave(arch) is { Count: > 0 } saved)
            throw new PeftOnnxException($"AddAdapter {name}: {dir} replaces '{saved[0]}' whole (modules_to_save), which a shared base cannot hold per adapter");
        var used = new HashSet<string>(StringComparer.Ordinal);
        var rows = new Dictionary<string, StackRow>(StringComparer.Ordinal);
        var targets = prepared.FindTargets(arch);
        int rank = 0;
        float[] Take(string key)
        {
            used.Add(key);
            return file.ReadFloat32(key);
        }
        foreach (var t in targets)
        {
            if (prepared is LoraConfig lora)
            {
                int r = t.Rank, inF = checked((int)t.Linear.InFeatures), outF = checked((int)t.Linear.OutFeatures);
                rank = Math.Max(rank, r);
                var a = Take(AdapterFormat.LoraAKey(t.Path));
                var b = Take(AdapterFormat.LoraBKey(t.Path));
                var aRow = new float[inF * r];
                for (int j = 0; j < r; j++)
                    for (int i = 0; i < inF; i++) aRow[i * r + j] = a[j * inF + i];
                float s = (float)t.Scaling;
                var bRow = new float[r * outF];
                for (int o = 0; o < outF; o++)
                    for (int j = 0; j < r; j++) bRow[j * outF + o] = b[o * r + j] * s;
                Put(rows, stacks, name, t, AdapterStackKind.LoraA, aRow, r, [inF, -1]);
                Put(rows, stacks, name, t, AdapterStackKind.LoraB, bRow, r, [-1, outF]);
                if (lora.UsesDora)
                {
                    var magnitude = Take(AdapterFormat.LoraMagnitudeKey(t.Path));
                    if (!stacks.ContainsKey(AdapterStackNames.Name(t.Path, AdapterStackKind.DoraScale)))
                        throw new PeftOnnxException($"AddAdapter {name}: the adapter is DoRA on '{t.Path}' but this export stacks no DoRA factor there (export a DoRA adapter among --adapter to make room for it)");
                    var w = baseWeight(t.Path)
                        ?? throw new PeftOnnxException($"AddAdapter {name}: {dir} is a DoRA adapter, whose factor needs the float32 base weight of '{t.Path}', which this export does not hold (quantized): export it with --adapter {name}={dir}");
                    Put(rows, stacks, name, t, AdapterStackKind.DoraScale, DoraFactor(w, a, b, magnitude, r, inF, outF, s), 0, [outF]);
                }
                if (lora.HasLoraBias)
                {
                    var bias = Take(AdapterFormat.LoraBBiasKey(t.Path)).Select(v => (float)(v * t.Scaling)).ToArray();
                    Put(rows, stacks, name, t, AdapterStackKind.LoraBias, bias, 0, [outF]);
                }
            }
            else
            {
                long width = t.IsFeedforward ? t.Linear.InFeatures : t.Linear.OutFeatures;
                var l = Take(AdapterFormat.Ia3Key(t.Path));
                Put(rows, stacks, name, t, AdapterStackKind.Ia3, l, 0, [width]);
            }
        }
        var left = file.Names.Where(n => !used.Contains(n) && !AdapterFormat.IsNeverLoaded(n)).Order(StringComparer.Ordinal).ToList();
        if (left.Count > 0)
            throw new PeftOnnxException($"AddAdapter {name}: {weightsPath}: tensor '{left[0]}' replaces a base tensor whole (trained biases or modules_to_save), which a shared base cannot hold per adapter");
        return new AdapterRows(config.PeftType, rank, rows);
    }

    /// <summary>
    /// DoRA's constant factor m / ||W + scaling * B @ A|| per output, as the exporter computes it: the adapted weight in
    /// float32 (<paramref name="w"/> is the base weight [in, out]), each output's squares summed in double.
    /// </summary>
    private static float[] DoraFactor(float[] w, float[] a, float[] b, float[] magnitude, int r, int inF, int outF, float scaling)
    {
        if (w.Length != (long)inF * outF) throw new PeftOnnxException($"the base weight holds {w.Length} values, expected {inF} x {outF}");
        var squares = new double[outF];
        for (int i = 0; i < inF; i++)
            for (int o = 0; o < outF; o++)
            {
                float delta = 0;
                for (int j = 0; j < r; j++) delta += b[o * r + j] * a[j * inF + i];
                float v = w[i * outF + o] + scaling * delta;
                squares[o] += (double)v * v;
            }
        return Enumerable.Range(0, outF).Select(o => (float)(magnitude[o] / Math.Sqrt(squares[o]))).ToArray();
    }

    /// <summary>
    /// Files a row under its stack after checking the export has that stack with the adapter's shape (-1: the rank,
    /// which may grow); a base of other sizes names the tensor and both shapes.
    /// </summary>
    private static void Put(Dictionary<string, StackRow> rows, IReadOnlyDictionary<string, long[]> stacks, string name, TargetMatch t,
        AdapterStackKind kind, float[] values, int rank, long[] rowShape)
    {
        var stack = AdapterStackNames.Name(t.Path, kind);
        if (!stacks.TryGetValue(stack, out var dims))
            throw new PeftOnnxException(kind switch
            {
                AdapterStackKind.LoraBias => $"AddAdapter {name}: the adapter has a lora_B bias on '{t.Path}' but this export stacks none there (export a lora_bias adapter among --adapter to make room for it)",
                AdapterStackKind.Ia3 => $"AddAdapter {name}: the adapter scales '{t.Path}' with IA3 but this export has no IA3 stack there (export an IA3 adapter with these targets among --adapter to make room for it)",
                _ => $"AddAdapter {name}: the adapter targets '{t.Path}' but this export stacks no LoRA there (export with an adapter targeting it among --adapter to make room for it)",
            });
        var expected = dims[1..];
        bool fits = expected.Length == rowShape.Length && expected.Zip(rowShape).All(p => p.Second < 0 || p.First == p.Second);
        if (!fits)
            throw new PeftOnnxException($"AddAdapter {name}: the adapter was made for another base: '{t.Path}' ({kind}) has row shape {Show(rowShape, rank)} but this export's '{stack}' holds {Show(expected, -1)}");
        rows[stack] = new StackRow(values, rank);
    }

    private static string Show(long[] shape, int rank) => $"[{string.Join(", ", shape.Select(d => d < 0 ? (rank >= 0 ? rank.ToString() : "r") : d.ToString()))}]";
}
