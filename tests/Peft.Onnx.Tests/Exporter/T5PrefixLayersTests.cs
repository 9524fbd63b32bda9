using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime;
using System.Text.Json.Nodes;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Training;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// PEFT's default num_layers for a T5 is the encoder's layer count; with fewer decoder layers the prefix holds more
/// groups than the decoder uses. transformers zips the decoder blocks with the groups, so the first
/// num_decoder_layers are used: the trainer and the export both accept such an adapter and agree on its logits.
/// </summary>
public sealed class T5PrefixLayersTests(ITestOutputHelper output)
{
    [Fact]
    public void Prefix_with_more_layers_than_the_decoder_gives_the_same_logits_in_the_trainer_and_the_export()
    {
        var baseDir = RandomBase();
        var random = new Random(5);
        var adapter = WritePrefixAdapter(random);
        var onnxDir = Path.Combine(Path.GetTempPath(), $"peft-onnx-t5-prefix-onnx-{Guid.NewGuid():N}");
        try
        {
            const int batch = 2, sourceLength = 7, target = 5;
            var ids = Enumerable.Range(0, batch * sourceLength).Select(_ => (long)random.Next(2, 61)).ToArray();
            var mask = Enumerable.Range(0, batch * sourceLength).Select(i => i >= sourceLength + 5 ? 0L : 1L).ToArray();
            var decoderIds = Enumerable.Range(0, batch * target).Select(i => i % target == 0 ? 0L : random.Next(2, 61)).ToArray();

            float[] trainer;
            using (var model = PeftModelSource.FromAdapter(baseDir, adapter, out _, inferenceMode: true))
            using (var scope = NewDisposeScope())
            using (no_grad())
            {
                var input = new Seq2SeqLmInput(tensor(ids, [batch, sourceLength]), tensor(mask, [batch, sourceLength]),
                    DecoderInputIds: tensor(decoderIds, [batch, target]));
                trainer = model.Forward(input).Logits.contiguous().data<float>().ToArray();
            }

            OnnxExport.Export(baseDir, adapter, onnxDir, new ExportOptions());
            using var runner = Seq2SeqForward.Open(onnxDir);
            var onnx = runner.Forward(ids, mask, decoderIds, batch).Logits;
            output.WriteLine($"max |logit diff| trainer vs export = {trainer.Select((e, i) => Math.Abs(e - onnx[i])).Max():g3}");
            Tolerance.AssertLogits(trainer, onnx, runner.VocabSize, null, "prefix num_layers 3 on a 2-layer decoder");
        }
        finally
        {
            Directory.Delete(baseDir, true);
            Directory.Delete(adapter, true);
            if (Directory.Exists(onnxDir)) Directory.Delete(onnxDir, true);
        }
    }

    /// <summary>
    /// The same case as a user runs it: `forward --base --adapter`, `export`, then `forward --onnx` on the export, with
    /// labels (the decoder input is labels shifted right on both sides); logits and loss agree.
    /// </summary>
    [Fact]
    public void Prefix_with_more_layers_than_the_decoder_gives_the_same_logits_through_the_cli_verbs()
    {
        var baseDir = RandomBase();
        var adapter = WritePrefixAdapter(new Random(5));
        var work = Paths.TempDir("peft-onnx-t5-prefix-cli");
        try
        {
            const int batch = 2, sourceLength = 7, target = 5;
            var random = new Random(9);
            var inputs = Path.Combine(work, "inputs.safetensors");
            var labels = Enumerable.Range(0, batch * target).Select(i => i == batch * target - 1 ? -100L : random.Next(2, 61)).ToArray();
            SafeTensorsWriter.Write(inputs, [
                TensorData.FromInt64("input_ids", [batch, sourceLength], Enumerable.Range(0, batch * sourceLength).Select(_ => (long)random.Next(2, 61)).ToArray()),
                TensorData.FromInt64("attention_mask", [batch, sourceLength], Enumerable.Range(0, batch * sourceLength).Select(i => i >= sourceLength + 5 ? 0L : 1L).ToArray()),
                TensorData.FromInt64("labels", [batch, target], labels)]);
            var torchOut = Path.Combine(work, "torch.safetensors");
            var onnxOut = Path.Combine(work, "onnx.safetensors");
            var export = Path.Combine(work, "export");

            foreach (var args in new[]
            {
                new[] { "forward", "--base", baseDir, "--adapter", adapter, "--inputs", inputs, "--out", torchOut, "--device", "cpu" },
                ["export", "--base", baseDir, "--adapter", adapter, "--out", export],
                ["forward", "--onnx", export, "--inputs", inputs, "--out", onnxOut, "--device", "cpu"],
            })
            {
                var run = CliRunner.Run(args);
                output.WriteLine($"{args[0]}: {run.Stderr}");
                Assert.Equal(0, run.ExitCode);
            }

            using var fromTorch = SafeTensorsFile.Open(torchOut);
            using var fromOnnx = SafeTensorsFile.Open(onnxOut);
            Assert.Equal(new long[] { batch, target, 61 }, fromTorch["logits"].Shape);
            Assert.Equal(fromTorch["logits"].Shape, fromOnnx["logits"].Shape);
            Tolerance.AssertLogits(fromTorch.ReadFloat32("logits"), fromOnnx.ReadFloat32("logits"), 61, null, "forward --base --adapter vs forward --onnx");
            Tolerance.AssertLoss(fromTorch.ReadFloat32("loss")[0], fromOnnx.ReadFloat32("loss")[0]);
        }
        finally
        {
            Directory.Delete(baseDir, true);
            Directory.Delete(adapter, true);
            Directory.Delete(work, true);
        }
    }

    private const int VirtualTokens = 4, PrefixLayers = 3, TokenDim = 3 * 8;

    /// <summary>A random T5 with a 3-layer encoder and a 2-layer decoder.</summary>
    private static string RandomBase() => RandomT5Checkpoint.Write(new JsonObject
    {
        ["model_type"] = "t5", ["architectures"] = new JsonArray("T5ForConditionalGeneration"),
        ["vocab_size"] = 61, ["d_model"] = 24, ["d_kv"] = 8, ["d_ff"] = 40, ["num_layers"] = 3, ["num_decoder_layers"] = 2,
        ["num_heads"] = 3, ["relative_attention_num_buckets"] = 8, ["relative_attention_max_distance"] = 12,
        ["feed_forward_proj"] = "relu", ["dropout_rate"] = 0.0, ["layer_norm_epsilon"] = 1e-6,
        ["decoder_start_token_id"] = 0, ["pad_token_id"] = 0, ["eos_token_id"] = 1,
    }, seed: 11);

    /// <summary>A prefix adapter with PEFT's default num_layers for that T5 (the encoder's 3), prefix rows drawn from <paramref name="random"/>.</summary>
    private static string WritePrefixAdapter(Random random)
    {
        var adapter = Paths.TempDir("peft-onnx-t5-prefix");
        File.WriteAllText(Path.Combine(adapter, AdapterFormat.ConfigFile), $$"""
            { "peft_type": "PREFIX_TUNING", "task_type": "SEQ_2_SEQ_LM", "num_virtual_tokens": {{VirtualTokens}}, "token_dim": {{TokenDim}},
              "num_attention_heads": 3, "num_layers": {{PrefixLayers}}, "num_transformer_submodules": 2,
              "encoder_hidden_size": {{TokenDim}}, "prefix_projection": false, "inference_mode": true }
            """);
        var rows = Enumerable.Range(0, VirtualTokens * PrefixLayers * 2 * TokenDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        SafeTensorsWriter.Write(Path.Combine(adapter, AdapterFormat.WeightsFile),
            [TensorData.FromFloat32(AdapterFormat.PromptEmbeddings, [VirtualTokens, PrefixLayers * 2 * TokenDim], rows)], AdapterFormat.WeightsMetadata);
        return adapter;
    }
}
