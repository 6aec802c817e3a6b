import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

@Entity({ name: 'transfers' })
export class Transfer {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'from_account', type: 'uuid' })
  from!: string;

  @Column({ name: 'to_account', type: 'uuid' })
  to!: string;

  @Column({ type: 'integer' })
  amount!: number;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}

/** A transfer as the API returns it. */
export interface TransferView {
  id: string;
  from: string;
  to: string;
  amount: number;
}
