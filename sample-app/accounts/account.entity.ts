import { Check, Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

@Entity({ name: 'accounts' })
@Check('accounts_balance_not_negative', '"balance" >= 0')
export class Account {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  /** In minor units (cents). */
  @Column({ type: 'integer' })
  balance!: number;
}

/** An account as the API returns it. */
export interface AccountView {
  id: string;
  balance: number;
}
