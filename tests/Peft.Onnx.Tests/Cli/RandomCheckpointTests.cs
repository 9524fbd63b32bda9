using Peft.Onnx.Bench;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Training;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>
/// The random BLOOM checkpoint and LoRA adapter `bench --export-560m` exports, at a tiny size: BLOOM's state dict in
/// Hugging Face's order, and a rank-r LoRA on the four linear modules of every block that loads onto that checkpoint.
/// </summary>
public class RandomCheckpointTests
{
    [Fact]
    public void Random_bloom_and_its_lora_have_hugging_face_names_and_shapes_and_load_together()
    {
        var work = Paths.TempDir("peft-onnx-random-bloom");
        try
        {
            const int h = 16, layers = 2, vocab = 50, r = 4;
            var config = RandomCheckpoint.BloomConfig(Path.Combine(Paths.Case("bloom", "base_model"), "config.json"), hidden: h, layers: layers, heads: 2, vocab: vocab);
            var baseDir = Path.Combine(work, "base");
            var adapterDir = Path.Combine(work, "lora");
            RandomCheckpoint.WriteAny(baseDir, config);
            RandomCheckpoint.WriteBloomLora(adapterDir, config, r);

            var expectedBase = new List<(string, long[])>
            {
                ("transformer.word_embeddings.weight", [vocab, h]),
                ("transformer.word_embeddings_layernorm.weight", [h]),
                ("transformer.word_embeddings_layernorm.bias", [h]),
            };
            var expectedLora = new List<(string, long[])>();
            for (int i = 0; i < layers; i++)
            {
                var p = $"transformer.h.{i}.";
                expectedBase.AddRange([
                    (p + "input_layernorm.weight", [h]), (p + "input_layernorm.bias", [h]),
                    (p + "self_attention.query_key_value.weight", [3 * h, h]), (p + "self_attention.query_key_value.bias", [3 * h]),
                    (p + "self_attention.dense.weight", [h, h]), (p + "self_attention.dense.bias", [h]),
                    (p + "post_attention_layernorm.weight", [h]), (p + "post_attention_layernorm.bias", [h]),
                    (p + "mlp.dense_h_to_4h.weight", [4 * h, h]), (p + "mlp.dense_h_to_4h.bias", [4 * h]),
                    (p + "mlp.dense_4h_to_h.weight", [h, 4 * h]), (p + "mlp.dense_4h_to_h.bias", [h])]);
                foreach (var (module, inFeatures, outFeatures) in new[] { ("self_attention.query_key_value", h, 3 * h), ("self_attention.dense", h, h), ("mlp.dense_h_to_4h", h, 4 * h), ("mlp.dense_4h_to_h", 4 * h, h) })
                {
                    expectedLora.Add(($"base_model.model.{p}{module}.lora_A.weight", [r, inFeatures]));
                    expectedLora.Add(($"base_model.model.{p}{module}.lora_B.weight", [outFeatures, r]));
                }
            }
            expectedBase.AddRange([("transformer.ln_f.weight", [h]), ("transformer.ln_f.bias", [h])]);

            using (var file = SafeTensorsFile.Open(Path.Combine(baseDir, "model.safetensors")))
            {
                Assert.Equal(expectedBase.Select(e => e.Item1), file.Names);
                foreach (var (name, shape) in expectedBase) Assert.Equal(shape, file[name].Shape);
                Assert.All(file.ReadFloat32("transformer.ln_f.weight"), v => Assert.Equal(1f, v));
            }
            using (var file = SafeTensorsFile.Open(Path.Combine(adapterDir, AdapterFormat.WeightsFile)))
            {
                Assert.Equal(expectedLora.Select(e => e.Item1).Order(), file.Names.Order());
                foreach (var (name, shape) in expectedLora) Assert.Equal(shape, file[name].Shape);
                Assert.Contains(file.ReadFloat32(expectedLora[1].Item1), v => v != 0f);
            }
            using var model = PeftModelSource.FromAdapter(baseDir, adapterDir, out var report, inferenceMode: true);
            Assert.Empty(report.Unexpected);
            Assert.Equal(r, ((LoraConfig)model.Config).R);
        }
        finally { Directory.Delete(work, true); }
    }
}
