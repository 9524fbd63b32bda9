namespace Peft.Onnx.Trainer;
public static class TorchInit { public static float Probe() => TorchSharp.torch.ones(2).sum().item<float>(); }
