Console.WriteLine(Peft.Onnx.Trainer.TorchInit.Probe());
