using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>What the trainer saves, the trainer and the exporter read back the same way (one adapter format).</summary>
public sealed class AdapterFormatRoundTripTests
{
    [Fact]
    public void A_conv1d_modules_to_save_copy_is_saved_in_the_checkpoint_layout_and_read_back_by_both_sides()
    {
        using var fixture = new TunerFixture("gpt2", "lora");
        var config = (LoraConfig)AdapterConfig.Load(fixture.AdapterDir) with { ModulesToSave = ["c_fc"] };
        var dir = Paths.TempDir();
        var onnx = TempExports.FreshPath();
        try
        {
            float[] changed;
            long[] storeShape;
            using (var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config))
            {
                var weight = model.Base.Parameters["transformer.h.0.mlp.c_fc.weight"];
                storeShape = weight.shape;
                using (no_grad()) weight.add_(0.25);
                changed = weight.detach().t().contiguous().data<float>().ToArray();
                model.Save(dir);
            }
            using (var file = SafeTensorsFile.Open(Path.Combine(dir, AdapterFormat.WeightsFile)))
            {
                var key = AdapterFormat.BaseKey("transformer.h.0.mlp.c_fc.weight");
                Assert.Equal(storeShape.Reverse(), file[key].Shape);
                Assert.Equal(changed, file.ReadFloat32(key));
            }
            using (var reloaded = PeftModel.Load(fixture.BaseDir, dir))
                Assert.Equal(changed, reloaded.Base.Parameters["transformer.h.0.mlp.c_fc.weight"].detach().t().contiguous().data<float>().ToArray());
            OnnxExport.Export(fixture.BaseDir, dir, onnx, new ExportOptions());
        }
        finally
        {
            Directory.Delete(dir, true);
            if (Directory.Exists(onnx)) Directory.Delete(onnx, true);
        }
    }
}
