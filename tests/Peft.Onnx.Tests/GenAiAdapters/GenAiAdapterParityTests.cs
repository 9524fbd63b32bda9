using System.Text.Json;
using Peft.Onnx.Bench;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.GenAiAdapters;

/// <summary>
/// A trained PEFT LoRA adapter written as an .onnx_adapter and served by ORT GenAI (Adapters.LoadAdapter +
/// SetActiveAdapter on an unmerged export whose LoRA tensors are overridable inputs) gives the greedy tokens and
/// first-step logits of our multi-adapter export with that adapter chosen.
/// </summary>
public class GenAiAdapterParityTests
{
    [Fact]
    public void GenAi_with_the_written_adapter_equals_our_multi_adapter_export()
    {
        var baseDir = Paths.Case("bloom", "base_model");
        var adapterDir = Paths.Case("bloom", "lora/adapter_trained");
        var dir = Paths.TempDir();
        try
        {
            var files = MultiAdapterBench.WriteGenAiFolder(baseDir, [adapterDir], graphRank: 6, Path.Combine(dir, "genai"), out var folder);
            var multi = Path.Combine(dir, "multi");
            MultiAdapterExport.Export(baseDir, [new NamedAdapter("trained", adapterDir)], multi, new ExportOptions());

            var baseline = GenAiBaseline.Prepare(allowBuild: true, TextWriter.Null, out var note);
            Assert.True(baseline != null, note);
            const int promptLength = 6, newTokens = 5;
            var run = baseline!.RunAdapters(folder, promptLength, newTokens, repeats: 0, files, out var runNote);
            Assert.True(run != null, runNote);
            var genAiTokens = run!.Value.GetProperty("sequences")[0].EnumerateArray().Select(t => t.GetInt32()).ToArray();
            var genAiLogits = run.Value.GetProperty("first_logits")[0].EnumerateArray().Select(v => v.GetSingle()).ToArray();

            using var model = OnnxModel.Load(multi, DeviceOptions.Cpu with { Report = null });
            var prompt = GenerationBench.Prompts(1, promptLength, model.VocabSize)[0];
            var request = GenerationRequest.FromIds([prompt], new GenerationOptions { MaxNewTokens = newTokens, DoSample = false, StopTokenIds = [] }) with { Adapter = "trained" };
            using var g = model.CreateGenerator(request);
            while (!g.IsDone) g.GenerateNextToken();
            Assert.Equal(g.GetNewTokens()[0], genAiTokens);

            using var forward = LogitsForward.Open(multi);
            var logits = forward.Causal(prompt.Select(t => (long)t).ToArray(), Enumerable.Repeat(1L, promptLength).ToArray(), 1, adapterIndices: [0]);
            var last = logits[^forward.VocabSize..];
            Assert.Equal(last.Length, genAiLogits.Length);
            Assert.True(last.Zip(genAiLogits).Max(p => Math.Abs(p.First - p.Second)) < 1e-4f,
                $"max |logit diff| {last.Zip(genAiLogits).Max(p => Math.Abs(p.First - p.Second))}");
            // the adapter changes the logits, so equality above is not the base's
            using var baseForward = LogitsForward.Open(multi);
            var baseLogits = baseForward.Causal(prompt.Select(t => (long)t).ToArray(), Enumerable.Repeat(1L, promptLength).ToArray(), 1, adapterIndices: [-1]);
            Assert.True(baseLogits[^forward.VocabSize..].Zip(genAiLogits).Max(p => Math.Abs(p.First - p.Second)) > 1e-3f);
        }
        finally { Directory.Delete(dir, true); }
    }
}
