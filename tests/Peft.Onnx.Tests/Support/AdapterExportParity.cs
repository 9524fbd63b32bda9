using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Tests.Support;

/// <summary>An exported base + adapter run on a fixture case's batch, against what PEFT computed for that case.</summary>
public static class AdapterExportParity
{
    /// <summary>
    /// Logits on the fixture batch vs reference.safetensors[<paramref name="logitsName"/>] (asserted within the
    /// logits tolerance) and one greedy generation of <paramref name="generatedLength"/> tokens in all.
    /// </summary>
    public static (double MaxDiff, long[] Generated) Run(string arch, string method, string dir, string logitsName, int generatedLength) =>
        RunCase(arch, Paths.Case(arch, method), dir, logitsName, generatedLength);

    /// <summary>
    /// As <see cref="Run"/>, for a case folder of any fixture set over the same base models (tests/fixtures/peft-current).
    /// Also the loss `forward --onnx` reports (<see cref="OnnxForward"/>) against the reference's loss of the same model:
    /// "loss" for "logits", "loss_merged" for "logits_merged" (AdaLoRA's loss_merged: a compiled model has no orthogonal
    /// regulariser).
    /// </summary>
    public static (double MaxDiff, long[] Generated) RunCase(string arch, string caseDir, string dir, string logitsName, int generatedLength)
    {
        var (maxDiff, generated) = LogitsAndGeneration(arch, caseDir, dir, logitsName, generatedLength);
        var lossName = logitsName.Replace("logits", "loss", StringComparison.Ordinal);
        var inputsPath = Path.Combine(Paths.ArchDirOf(caseDir, arch), "inputs.safetensors");
        using var expected = SafeTensorsFile.Open(Path.Combine(caseDir, "reference.safetensors"));
        var loss = OnnxForward.Run(dir, ForwardBatch.Read(inputsPath), inputsPath).Loss ?? throw new InvalidOperationException("the fixture batch has labels");
        Tolerance.AssertLoss(expected.ReadFloat32(lossName)[0], loss, $"{arch}/{Path.GetFileName(caseDir.TrimEnd('/'))} ONNX {lossName}");
        return (maxDiff, generated);
    }

    private static (double MaxDiff, long[] Generated) LogitsAndGeneration(string arch, string caseDir, string dir, string logitsName, int generatedLength)
    {
        var method = Path.GetFileName(caseDir.TrimEnd('/'));
        var archDir = Paths.ArchDirOf(caseDir, arch);
        using var reference = new Reference(arch, archDir);
        using var expected = SafeTensorsFile.Open(Path.Combine(caseDir, "reference.safetensors"));
        var ids = reference.Inputs.ReadInt64("input_ids");
        var mask = reference.Inputs.ReadInt64("attention_mask");
        var labels = reference.Inputs.ReadInt64("labels");
        var prompt = reference.Inputs.ReadInt64("gen_input_ids");
        int batch = (int)reference.Shape("input_ids")[0];
        var reference32 = expected.ReadFloat32(logitsName);
        var config = ModelConfig.Load(Path.Combine(archDir, "base_model"));
        if (reference.IsEncoderDecoder)
        {
            var t5 = (T5Config)config;
            using var runner = Seq2SeqForward.Open(dir);
            var step = runner.Forward(ids, mask, Seq2SeqForward.ShiftRight(labels, batch, t5.DecoderStartId, t5.PadTokenId ?? 0), batch);
            var rows = labels.Select(l => l != -100).ToArray();
            Tolerance.AssertLogits(reference32, step.Logits, runner.VocabSize, rows, $"{arch}/{method} {logitsName}");
            var generated = runner.Greedy(prompt, Enumerable.Repeat(1L, prompt.Length).ToArray(), 1, generatedLength - 1, t5.DecoderStartId,
                t5.EosTokenId!.Select(e => (long)e).ToArray(), t5.PadTokenId ?? 0);
            return (DecoderExportChecks.MaxDiff(reference32, step.Logits, runner.VocabSize, rows), generated[0]);
        }
        else
        {
            using var runner = CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile));
            var step = runner.Run(ids, mask, batch);
            var rows = Tolerance.RowsFromMask(mask);
            Tolerance.AssertLogits(reference32, step.Logits, runner.VocabSize, rows, $"{arch}/{method} {logitsName}");
            var generated = OnnxGreedy.Generate(runner, prompt, generatedLength - prompt.Length, config.EosTokenId?[0] ?? -1);
            return (DecoderExportChecks.MaxDiff(reference32, step.Logits, runner.VocabSize, rows), generated);
        }
    }

    /// <summary>The exported decoder-only graph's logits on the fixture batch of <paramref name="arch"/>.</summary>
    public static float[] FixtureLogits(string arch, string dir)
    {
        using var reference = new Reference(arch);
        using var runner = CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile));
        return runner.Run(reference.Inputs.ReadInt64("input_ids"), reference.Inputs.ReadInt64("attention_mask"), (int)reference.Shape("input_ids")[0]).Logits;
    }
}
